"""A deterministic, realistic list of Kota Kupang UMKM for demos, tests and benchmarks.

Each row is one registration as the registry's CSV import takes it (the RegistrationForm field names, every value
text, '' for empty), typed the way officers type: phones in mixed formats, some place names spelled loosely, some
sales written with dots. Every row passes the registry's validation, and NIKs, phones and NIBs never repeat, so
the registry's duplicate rules never fire by accident.

What the list is built from:
- the news articles in /work/shared/seeds: 17,000 UMKM in the city, 12,000 of them with an NIB (the default NIB
  share); Se'i (smoked meat) and Tenun NTT (woven cloth) as flagship products; culinary, crafts and retail;
- the 6 kecamatan and 51 kelurahan of shared.reference.wilayah, weighted roughly by population;
- KBLI 2020 codes of medium or high confidence in the project's fact check (/tmp/research/indonesian_rules.md §3c);
- Kemendagri region codes for the NIKs of owners whose KTP was first issued outside the city (cahyadsn/wilayah,
  Kepmendagri 300.2.2-2138/2025).

Owners' ages are drawn as of REFERENCE_DATE, not today, so a seed gives the same rows whenever it runs.
This package does not import the services: the CLI that uses it is their client.

Where things are:
- api: generate and write_csv, the ways in;
- rows: one row after another, the order of the random draws (which is the list: keep it);
- owners, businesses, places, phones, money: the weighted tables of each part of a row and the draws reading them;
- identity: the bijections that keep NIKs, phones and NIBs distinct, and the birth dates NIKs carry;
- lookup: the weighted lookup table all the tables are.
"""

from berdaya.dataset.api import DEFAULT_NIB_SHARE, generate, write_csv
from berdaya.dataset.identity import MAX_ROWS
from berdaya.dataset.owners import MAX_AGE, MIN_AGE, REFERENCE_DATE
from berdaya.dataset.rows import COLUMNS

__all__ = [
    "COLUMNS",
    "DEFAULT_NIB_SHARE",
    "MAX_AGE",
    "MAX_ROWS",
    "MIN_AGE",
    "REFERENCE_DATE",
    "generate",
    "write_csv",
]
