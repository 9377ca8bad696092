"""Every message the notifier says to owners, officers and sponsors, in plain Bahasa Indonesia, with dates and times
in WITA; in one place so they are reviewed together.

Owners' texts are one paragraph of under 1,000 characters: WhatsApp carries each as the one body parameter of an
approved template (a parameter may hold no line break), and SMS splits it into parts."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from datetime import date, datetime, timedelta

from services.notifier.domain.digest import PledgeWeek
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


# Templates whose text holds an officer's own words about the owner (why an NIB application failed): the registry
# shows those words only to officers of the business's kecamatan, and so must the notifier's record of the message.
HOLDS_OFFICERS_WORDS = frozenset({"nib_rejected"})
WORDS_WITHHELD = ("[the text holds an officer's words about the owner, shown only to officers of the business's "
                  "kecamatan]")  # fmt: skip


def shown_body(template: str, body: str, personal: bool) -> str:
    """A message's text as shown to someone who may (`personal`) or may not see the owner's personal data."""
    return body if personal or template not in HOLDS_OFFICERS_WORDS else WORDS_WITHHELD


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


# ---------------------------------------------------------------------------------------------------------------
# Training and the halal pathway
# ---------------------------------------------------------------------------------------------------------------

# Why a business was invited, said as a reason the owner recognises.
ALASAN_UNDANGAN = {
    "halal_uncertified": "Sejak 17 Oktober 2026 produk makanan dan minuman usaha mikro dan kecil wajib bersertifikat "
    "halal, dan sertifikasi halal gratis (SEHATI) bisa diurus bersama pendamping.",
    "no_nib": "Pelatihan ini membantu Anda mengurus NIB (Nomor Induk Berusaha) lewat OSS tanpa biaya.",
    "youth_digital": "Pelatihan ini untuk pelaku usaha muda yang ingin berjualan lewat Instagram, TikTok dan "
    "lokapasar.",
    "funded_bookkeeping": "Pelatihan ini membantu Anda mencatat keuangan usaha, termasuk dana bantuan yang Anda "
    "terima.",
    "officer": "",
}

TAHAP_HALAL = {
    "nib": "NIB",
    "sihalal_account": "pembuatan akun SIHALAL",
    "companion_verified": "verifikasi oleh pendamping proses produk halal",
    "submitted": "pengajuan sertifikasi (SEHATI)",
    "document_check": "pemeriksaan dokumen oleh BPJPH",
    "fatwa": "penetapan fatwa halal",
    "certificate": "terbitnya sertifikat halal",
}


def training_invitation_text(business_name: str, title: str, starts_at: datetime, venue: str, need: str) -> str:
    reason = ALASAN_UNDANGAN.get(need, "")
    return " ".join(part for part in (
        f"Usaha {business_name} diundang mengikuti pelatihan gratis \"{title}\" mulai {waktu_wita(starts_at)} di "
        f"{venue}.", reason,
        "Jika tidak dapat hadir, kabari petugas pendamping UMKM di kelurahan Anda agar kursi diberikan kepada yang lain.",
    ) if part)  # fmt: skip


def training_waitlisted_text(business_name: str, title: str, position: int) -> str:
    return (
        f"Kelas pelatihan \"{title}\" sudah penuh. Usaha {business_name} berada di daftar tunggu nomor {position}; "
        "kami kabari begitu ada kursi kosong."
    )


def training_seat_text(business_name: str, title: str, starts_at: datetime, venue: str) -> str:
    return (
        f"Kabar baik! Ada kursi kosong untuk usaha {business_name} di pelatihan \"{title}\", mulai "
        f"{waktu_wita(starts_at)} di {venue}. Sampai jumpa di kelas."
    )


def training_cancelled_text(business_name: str) -> str:
    return (
        f"Mohon maaf, kelas pelatihan yang diikuti usaha {business_name} dibatalkan. Anda akan diundang ke kelas "
        "berikutnya."
    )


def training_completed_text(business_name: str, title: str, attendance_percent: int | None) -> str:
    attended = f" dengan kehadiran {attendance_percent}%" if attendance_percent is not None else ""
    return (
        f"Selamat! Usaha {business_name} telah menyelesaikan pelatihan \"{title}\"{attended}. Sertifikat pelatihan "
        "dapat diambil di kantor kelurahan. Pendamping akan mengunjungi usaha Anda untuk membantu penerapannya."
    )


def halal_stalled_text(business_name: str, waiting_for: str, since: date) -> str:
    return (
        f"Proses sertifikasi halal usaha {business_name} masih menunggu {TAHAP_HALAL.get(waiting_for, waiting_for)} "
        f"sejak {tanggal(since)}. Petugas pendamping akan menghubungi Anda untuk membantu."
    )


def halal_stalled_officer_text(business_name: str, business_id: uuid.UUID, waiting_for: str, since: date, days: int) -> str:
    return (
        f"Pendampingan halal usaha {business_name} (nomor registrasi {nomor_registrasi(business_id)}) tertahan "
        f"{days} hari di tahap {TAHAP_HALAL.get(waiting_for, waiting_for)}, sejak {tanggal(since)}. Mohon ditindaklanjuti."
    )


def halal_not_eligible_text(business_name: str, reason: str, regular_route_possible: bool) -> str:
    if reason == "pork":
        return (
            f"Produk usaha {business_name} memakai bahan dari babi, sehingga tidak dapat disertifikasi halal. Usaha "
            "Anda tetap dapat berjualan dengan mencantumkan keterangan \"tidak halal\" pada kemasan dan tempat usaha."
        )
    what = {
        "slaughtered_meat_uncertified_abattoir": "memakai daging dari rumah potong yang belum bersertifikat halal",
        "not_micro_or_small": "bukan usaha mikro atau kecil",
    }.get(reason, "tidak memenuhi syarat jalur gratis")
    after = (" Sertifikasi tetap bisa diurus lewat jalur reguler (berbayar); petugas pendamping dapat menjelaskannya."
             if regular_route_possible else "")  # fmt: skip
    return f"Usaha {business_name} belum dapat memakai sertifikasi halal gratis (SEHATI) karena {what}.{after}"


# ---------------------------------------------------------------------------------------------------------------
# Offer reminders, and offers at risk
# ---------------------------------------------------------------------------------------------------------------


def _bantuan(instrument: str, programme: str | None) -> str:
    what = INSTRUMEN.get(instrument, "bantuan")
    return f"{what} {programme}" if programme else what


def offer_reminder_text(business_name: str, amount: int, instrument: str, programme: str | None, sponsor: str,
                        expires_at: datetime) -> str:  # fmt: skip
    return (
        f"Pengingat: tawaran {_bantuan(instrument, programme)} sebesar {rupiah(amount)} dari {sponsor} untuk usaha "
        f"{business_name} berlaku sampai {waktu_wita(expires_at)}. Jika ingin menerimanya, segera hubungi petugas "
        "pendamping UMKM di kelurahan Anda."
    )


def offer_at_risk_officer_text(business_name: str, business_id: uuid.UUID, amount: int, sponsor: str,
                               expires_at: datetime, reaches_owner_at: datetime | None) -> str:  # fmt: skip
    """To the kecamatan's officers when quiet hours keep an offer from its owner until (almost) too late."""
    usaha = f"usaha {business_name} (nomor registrasi {nomor_registrasi(business_id)})"
    if reaches_owner_at is None:
        told = "Pesan kepada pemilik tidak terkirim karena tawaran berakhir pada jam tenang malam hari."
    else:
        told = (f"Pesan kepada pemilik baru dapat dikirim {waktu_wita(reaches_owner_at)} (setelah jam tenang malam "
                "hari), sehingga waktunya untuk menjawab sempit.")  # fmt: skip
    return (f"Tawaran {rupiah(amount)} dari {sponsor} untuk {usaha} berakhir {waktu_wita(expires_at)}. {told} "
            "Mohon hubungi pemilik sebelum tawaran berakhir.")  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------
# Consent: the answers to STOP / BERHENTI and MULAI / START
# ---------------------------------------------------------------------------------------------------------------


def opted_out_text() -> str:
    return (
        "Baik, Anda tidak akan lagi menerima pesan informasi dari program UMKM Berdaya Kota Kupang. Pesan wajib, "
        "seperti bukti penyaluran dana atas nama usaha Anda, tetap dikirim. Balas MULAI jika ingin menerima pesan lagi."
    )


def opted_in_text() -> str:
    return (
        "Terima kasih, Anda akan kembali menerima pesan dari program UMKM Berdaya Kota Kupang. Balas BERHENTI kapan "
        "saja jika tidak ingin menerima pesan lagi."
    )


# ---------------------------------------------------------------------------------------------------------------
# Sponsors' weekly digest (email)
# ---------------------------------------------------------------------------------------------------------------


def sponsor_digest_text(sponsor_name: str, monday: date, weeks: Sequence[PledgeWeek]) -> str:
    sunday = monday + timedelta(days=6)
    lines = [f"Yth. {sponsor_name},", "",
             f"Berikut ringkasan mingguan program UMKM Berdaya Kota Kupang, {tanggal(monday)} sampai {tanggal(sunday)}."]  # fmt: skip
    for week in weeks:
        lines += ["", f"Program \"{week.title}\" (total {rupiah(week.total_rupiah)}):"]
        if week.quiet:
            lines.append("- Minggu ini tidak ada tawaran baru, jawaban, maupun penyaluran.")
        else:
            lines.append(
                f"- Minggu ini: {week.offered} tawaran baru senilai {rupiah(week.offered_rupiah)}; {week.accepted} "
                f"diterima, {week.declined} ditolak, {week.expired} kedaluwarsa, {week.withdrawn} dibatalkan; "
                f"{week.disbursed} penyaluran senilai {rupiah(week.disbursed_rupiah)}."
            )
        lines.append(
            f"- Sejak awal: {rupiah(week.disbursed_to_date_rupiah)} sudah disalurkan kepada {week.funded_businesses} "
            f"usaha; {rupiah(week.reserved_rupiah)} menunggu jawaban pemilik usaha; {rupiah(week.accepted_rupiah)} "
            f"sudah diterima dan menunggu penyaluran; sisa {rupiah(week.remaining_rupiah)}."
        )
        if week.closed:
            lines.append("- Program ini sudah ditutup.")
    lines += ["", "Rincian per kecamatan dan skala usaha dapat dilihat pada laporan sponsor di aplikasi Berdaya.", "",
              "Salam,", "Tim UMKM Berdaya Kota Kupang"]  # fmt: skip
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------
# Email subjects
# ---------------------------------------------------------------------------------------------------------------


def halal_stalled_officer_subject(business_name: str) -> str:
    return f"Pendampingan halal tertahan: {business_name}"


def offer_at_risk_officer_subject(business_name: str) -> str:
    return f"Tawaran hampir berakhir: {business_name}"


def sponsor_digest_subject(sponsor_name: str, monday: date) -> str:
    return f"Ringkasan mingguan Berdaya untuk {sponsor_name}, pekan {tanggal(monday)}"


# ---------------------------------------------------------------------------------------------------------------
# Alerts from Alertmanager (domain/alerts.py): for operators, plain and in English like the alert rules' own
# annotations; for the programme office's officers, in Bahasa Indonesia around them. Each is one line of under 1,000
# characters (a WhatsApp template parameter, a few SMS parts), whatever an alert's annotations hold.
# ---------------------------------------------------------------------------------------------------------------

ALERT_BODY_LIMIT = 990
ALERT_SUBJECT_LIMIT = 200
_SPACES = re.compile(r"\s+")


def _clip(text: str, limit: int) -> str:
    """One line (every run of whitespace, newlines included, becomes one space), at most `limit` characters."""
    line = _SPACES.sub(" ", text).strip()
    return line if len(line) <= limit else line[: max(0, limit - 1)].rstrip() + "…"


def _sentence(text: str) -> str:
    return text if not text or text[-1] in ".!?…" else text + "."


def _waktu_singkat(moment: datetime) -> str:
    """2026-11-23 10:00 WITA: for operators, sortable and unambiguous."""
    return f"{moment.astimezone(WITA):%Y-%m-%d %H:%M} WITA"


def _lama(start: datetime, end: datetime) -> str:
    minutes = max(0, int((end - start).total_seconds() // 60))
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours < 48 else f"{hours // 24} d {hours % 24} h"


def alert_subject(*, officers: bool, firing: bool, name: str, severity: str | None, summary: str) -> str:
    if officers:
        head = "[PERINGATAN]" if firing else "[SELESAI]"
    else:
        head = "[FIRING]" if firing else "[RESOLVED]"
    level = f" ({severity})" if severity else ""
    return _clip(f"{head} {name}{level}: {summary}" if summary else f"{head} {name}{level}", ALERT_SUBJECT_LIMIT)


def alert_text(*, officers: bool, firing: bool, name: str, severity: str | None, summary: str, description: str,
               starts_at: datetime, ends_at: datetime | None, labels: Sequence[tuple[str, str]], runbook: str) -> str:  # fmt: skip
    """[FIRING] BerdayaConsumerLagging (warning): <summary>. <description>. Since <WITA>. <labels>. Runbook: <link>;
    [RESOLVED] with how long it fired; for officers [PERINGATAN] / [SELESAI] in Bahasa Indonesia."""
    head = alert_subject(officers=officers, firing=firing, name=name, severity=severity, summary="")
    shown = ", ".join(f"{key}={value}" for key, value in labels)
    if officers:
        if firing:
            when = f"Sejak {waktu_wita(starts_at)}."
        elif ends_at is None:
            when = f"Berlangsung sejak {waktu_wita(starts_at)}."
        else:
            when = f"Berlangsung dari {waktu_wita(starts_at)} sampai {waktu_wita(ends_at)}."
        guide = f"Panduan: {runbook}"
        labelled = f"Label: {shown}." if shown else ""
    else:
        if firing:
            when = f"Since {_waktu_singkat(starts_at)}."
        elif ends_at is None:
            when = f"Fired from {_waktu_singkat(starts_at)}."
        else:
            when = f"Fired from {_waktu_singkat(starts_at)} to {_waktu_singkat(ends_at)} ({_lama(starts_at, ends_at)})."
        guide = f"Runbook: {runbook}"
        labelled = f"Labels: {shown}." if shown else ""
    # What must always be there (what, when, where to look) gets its room first; the alert's own words share the rest.
    guide = _clip(guide, 300)
    fixed = len(head) + len(when) + len(guide) + 6
    room = max(0, ALERT_BODY_LIMIT - fixed)
    summary_part = _sentence(_clip(summary, min(room, 400))) if summary else ""
    room -= len(summary_part)
    description_part = _sentence(_clip(description, min(max(room - 150, 0), 400))) if description and room > 160 else ""
    room -= len(description_part)
    labels_part = _clip(labelled, room) if labelled and room > 20 else ""
    parts = [f"{head}:" if summary_part else f"{head}.", summary_part, description_part, when, labels_part, guide]
    return _clip(" ".join(p for p in parts if p), ALERT_BODY_LIMIT)
