"""Every message the notifier says to owners, in plain Bahasa Indonesia, with dates and times in WITA; in one place
so they are reviewed together."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from services.notifier.domain.messages import Contact
from shared.reference.wita import WITA

BULAN = ("Januari", "Februari", "Maret", "April", "Mei", "Juni", "Juli", "Agustus", "September", "Oktober",
         "November", "Desember")  # fmt: skip


def tanggal(day: date) -> str:
    """17 Agustus 2026."""
    return f"{day.day} {BULAN[day.month - 1]} {day.year}"


def waktu_wita(moment: datetime) -> str:
    """23 November 2026 pukul 19.36 WITA: Indonesian style, in Kupang's time."""
    local = moment.astimezone(WITA)
    return f"{tanggal(local.date())} pukul {local:%H.%M} WITA"


def nomor_registrasi(business_id: uuid.UUID) -> str:
    """A short reference an owner can read out on the phone."""
    return business_id.hex[:8].upper()


def welcome_text(contact: Contact, registered_at: datetime, nib_status: str, nib: str | None) -> str:
    lines = [
        f"Selamat datang di program UMKM Berdaya Kota Kupang! Usaha Anda, {contact.business_name}, "
        f"sudah terdaftar pada {waktu_wita(registered_at)} di Kelurahan {contact.kelurahan}, "
        f"Kecamatan {contact.kecamatan}. Nomor registrasi: {nomor_registrasi(contact.business_id)}.",
    ]
    if nib_status == "issued" and nib:
        lines.append(f"NIB usaha Anda ({nib}) sudah tercatat.")
    else:
        lines.append(
            "Usaha Anda belum tercatat memiliki NIB (Nomor Induk Berusaha). Petugas pendamping akan membantu "
            "pengurusannya melalui OSS tanpa biaya."
        )
    lines.append("Informasi pelatihan dan bantuan modal akan kami kirim lewat nomor ini.")
    return " ".join(lines)


def nib_issued_text(contact: Contact, nib: str, issued_on: date) -> str:
    return (
        f"Selamat! NIB untuk usaha {contact.business_name} telah terbit pada {tanggal(issued_on)}: {nib}. "
        "Simpan nomor ini: NIB diperlukan untuk sertifikasi halal gratis (SEHATI), KUR, dan program bantuan usaha."
    )


def nib_rejected_text(contact: Contact, reason: str) -> str:
    return (
        f"Pengajuan NIB untuk usaha {contact.business_name} belum berhasil. Alasan: {reason}. "
        "Silakan hubungi petugas pendamping UMKM di kelurahan Anda untuk memperbaikinya."
    )


def rupiah(amount: int) -> str:
    """Rp5.000.000: Indonesian thousands separators."""
    return f"Rp{amount:,}".replace(",", ".")


INSTRUMEN = {
    "grant": "bantuan hibah",
    "equipment": "bantuan peralatan",
    "soft_loan": "pinjaman lunak",
    "financing_referral": "rujukan pembiayaan",
}


def funding_offer_text(business_name: str, amount: int, instrument: str, programme: str | None, sponsor: str,
                       expires_at: datetime) -> str:  # fmt: skip
    what = INSTRUMEN.get(instrument, "bantuan")
    if programme:
        what = f"{what} {programme}"
    return (
        f"Selamat! Usaha {business_name} terpilih menerima {what} sebesar {rupiah(amount)} dari {sponsor}. "
        f"Tawaran ini berlaku sampai {waktu_wita(expires_at)}. Hubungi petugas pendamping UMKM di kelurahan Anda "
        "untuk menerima atau menolaknya."
    )


def funds_disbursed_text(business_name: str, amount: int, sponsor: str, reference: str) -> str:
    return (
        f"Dana sebesar {rupiah(amount)} dari {sponsor} untuk usaha {business_name} telah disalurkan "
        f"(referensi {reference}). Semoga usaha Anda makin berkembang!"
    )
