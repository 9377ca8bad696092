"""How big a business is (PP 7/2021) and whether its owner is young (UU 40/2009)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from shared.errors import InvalidInput

# PP 7/2021 art. 35: capital excludes land and buildings; ceilings inclusive. Rupiah.
CAPITAL_CEILINGS = (("micro", 1_000_000_000), ("small", 5_000_000_000), ("medium", 10_000_000_000))
SALES_CEILINGS = (("micro", 2_000_000_000), ("small", 15_000_000_000), ("medium", 50_000_000_000))


def classify_scale(capital: int | None, annual_sales: int | None) -> tuple[str, str]:
    """(scale, basis). Annual sales decide when known (art. 35(5), the criterion for empowerment programmes of
    running businesses); otherwise capital (art. 35(3), for new businesses)."""
    if annual_sales is not None:
        amount, ceilings, basis, field_name = annual_sales, SALES_CEILINGS, "annual_sales", "annual_sales_rupiah"
    elif capital is not None:
        amount, ceilings, basis, field_name = capital, CAPITAL_CEILINGS, "capital", "capital_rupiah"
    else:
        raise InvalidInput.one(
            "annual_sales_rupiah",
            "scale.missing",
            "give annual_sales_rupiah (running business) or capital_rupiah (new business) to set the scale",
        )
    for scale, ceiling in ceilings:
        if amount <= ceiling:
            return scale, basis
    raise InvalidInput.one(
        field_name,
        "scale.not_umkm",
        f"Rp{amount:,} is above the medium-business ceiling of Rp{ceilings[-1][1]:,} (PP 7/2021): "
        "not a UMKM".replace(",", "."),
    )


def age_on(birth_date: date, day: date) -> int:
    return day.year - birth_date.year - ((day.month, day.day) < (birth_date.month, birth_date.day))


@dataclass(frozen=True, slots=True)
class YouthRange:
    """UU 40/2009: youth are 16 to 30; kept in settings because a revision is being discussed."""

    min_age: int = 16
    max_age: int = 30

    def is_youth(self, birth_date: date, on: date) -> bool:
        return self.min_age <= age_on(birth_date, on) <= self.max_age

    def youth_flag(self, birth_date: date, today: date) -> bool:
        """The flag events carry: youth as of the first day of `today`'s month. Its changes then happen on the first
        of a month, and tell no consumer the owner's birthday."""
        return self.is_youth(birth_date, today.replace(day=1))

    def birth_dates(self, on: date) -> tuple[date, date]:
        """Owners within the range on `on` were born after the first date and on or before the second."""
        # age >= min_age <=> born on or before `on` minus min_age years; age <= max_age <=> born after `on` minus
        # (max_age + 1) years.
        return years_before(on, self.max_age + 1), years_before(on, self.min_age)


def years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)
