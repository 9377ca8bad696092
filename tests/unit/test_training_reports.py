"""Training's reports suppress counts of businesses under 5, and any rate computed from them (domain/reports.py)."""

from __future__ import annotations

from services.training.domain.reports import (
    CoverageFigures,
    Figures,
    band,
    coverage_row,
    coverage_rows,
    follow_up_row,
    hidden_cells,
    percent,
    row,
    rows,
    suppressed,
)


def test_counts_from_one_to_four_are_suppressed_and_zero_and_five_are_shown():
    assert [suppressed(n) for n in range(7)] == [False, True, True, True, True, False, False]


def test_a_rate_is_hidden_when_a_count_behind_it_is_suppressed_or_there_is_nothing_to_divide():
    assert percent(3, 10, counts=(10,)) == 30
    assert percent(2, 3, counts=(3,)) is None
    assert percent(0, 0) is None
    assert percent(2, 3) == 66  # rounded down


def test_a_programme_row_shows_fill_attendance_and_completion_and_hides_small_groups():
    f = Figures(group="Halal", cohorts=2, capacity=80, enrolled=60, waitlisted=3, present=200, absent=40, excused=9,
                completed=50, not_completed=10,
                assessments={"management": {"70-84": 30, "85-100": 4, "0-49": 16}})  # fmt: skip
    r = row(f)
    assert (r.enrolled, r.fill_percent, r.waitlisted, r.attendance_percent) == (60, 75, None, 83)
    assert (r.completed, r.completion_percent) == (50, 83)
    # 4 in 85-100 would be 50 completed less 16 less 30: the next smallest band is hidden with it.
    assert r.assessment_bands["management"] == {"0-49": None, "50-69": 0, "70-84": 30, "85-100": None}
    assert r.assessment_bands["leadership"] == {"0-49": 0, "50-69": 0, "70-84": 0, "85-100": 0}


def test_a_kecamatan_with_three_trainees_shows_nothing_that_would_identify_them():
    r = row(Figures(group="Alak", enrolled=3, present=10, absent=2, completed=2, not_completed=1))
    assert (r.enrolled, r.attendance_percent, r.completed, r.completion_percent) == (None, None, None, None)


def test_scores_fall_in_documented_bands():
    assert [band(s) for s in (0, 49, 50, 69, 70, 84, 85, 100)] == ["0-49", "0-49", "50-69", "50-69", "70-84", "70-84",
                                                                      "85-100", "85-100"]  # fmt: skip


def test_halal_coverage_is_certified_over_food_businesses_with_small_counts_suppressed():
    r = coverage_row(CoverageFigures("Oebobo", food_businesses=400, self_declare=350, certified=40, in_pathway=30,
                                     stalled=2, not_eligible=12))  # fmt: skip
    assert (r.coverage_percent, r.stalled, r.not_eligible) == (10, None, 12)
    assert coverage_row(CoverageFigures("Alak", 20, 18, 3, 0, 0, 0)).coverage_percent is None


def test_a_count_hidden_alone_takes_the_next_smallest_with_it_so_subtraction_cannot_give_it_back():
    assert hidden_cells({"Alak": 2, "Oebobo": 5, "Maulafa": 40}) == {"Alak", "Oebobo"}
    assert hidden_cells({"Alak": 2, "Oebobo": 3, "Maulafa": 40}) == {"Alak", "Oebobo"}  # two hidden already
    assert hidden_cells({"Alak": 2, "Oebobo": 0, "Maulafa": 0}) == {"Alak"}  # the total is 2, hidden itself
    assert hidden_cells({"Alak": 0, "Oebobo": 6}) == set()


def test_halal_coverage_hides_a_second_kecamatan_where_the_citys_total_would_give_back_one_hidden_alone():
    figures = [CoverageFigures("Alak", 30, 28, 2, 6, 1, 2), CoverageFigures("Oebobo", 400, 350, 40, 30, 9, 12),
               CoverageFigures("Maulafa", 90, 80, 7, 10, 3, 0)]  # fmt: skip

    alak, oebobo, maulafa, city = coverage_rows(figures, "Kota Kupang")

    assert (alak.certified, maulafa.certified, oebobo.certified, city.certified) == (None, None, 40, 49)
    assert (alak.coverage_percent, maulafa.coverage_percent, oebobo.coverage_percent) == (None, None, 10)
    assert (alak.not_eligible, oebobo.not_eligible, maulafa.not_eligible, city.not_eligible) == (None, None, 0, 14)
    assert (alak.stalled, maulafa.stalled, oebobo.stalled, city.stalled) == (None, None, 9, 13)


def test_a_breakdown_hides_a_second_row_and_its_rates_where_the_other_breakdown_would_give_back_one_hidden_alone():
    by_kecamatan = rows([Figures(group="Alak", enrolled=3, present=10, absent=2, completed=3),
                         Figures(group="Oebobo", enrolled=17, present=60, absent=8, completed=12, not_completed=5)])  # fmt: skip

    alak, oebobo = by_kecamatan

    assert (alak.enrolled, oebobo.enrolled, oebobo.attendance_percent, oebobo.completed) == (None, None, None, None)
    assert oebobo.completion_percent is None and oebobo.group == "Oebobo"


def test_a_row_whose_completed_is_hidden_hides_its_bands_which_would_add_up_to_it():
    alak = Figures(group="Alak", enrolled=6, completed=2, not_completed=4, assessments={"management": {"70-84": 2}})
    oebobo = Figures(group="Oebobo", enrolled=8, completed=6, not_completed=2,
                     assessments={"management": {"70-84": 6}, "leadership": {"85-100": 6}})  # fmt: skip

    _, hidden_with_alak = rows([alak, oebobo])

    assert hidden_with_alak.completed is None
    assert all(n is None for bands in hidden_with_alak.assessment_bands.values() for n in bands.values())


def test_a_band_hidden_alone_in_its_column_takes_another_row_s_band_with_it():
    alak = Figures(group="Alak", enrolled=20, completed=20, assessments={"management": {"0-49": 3, "70-84": 17}})
    oebobo = Figures(group="Oebobo", enrolled=30, completed=30, assessments={"management": {"0-49": 10, "70-84": 20}})

    alak_row, oebobo_row = rows([alak, oebobo])

    # The other breakdown shows 13 in 0-49: Oebobo's 10 would give back Alak's 3.
    assert alak_row.assessment_bands["management"] == {"0-49": None, "50-69": 0, "70-84": None, "85-100": 0}
    assert oebobo_row.assessment_bands["management"]["0-49"] is None
    assert (alak_row.completed, oebobo_row.completed) == (20, 30)


def test_those_enrolled_less_a_few_who_did_not_complete_hide_the_completed_and_the_rate():
    few_left = row(Figures(group="X", enrolled=7, completed=5, not_completed=2,
                           assessments={"management": {"70-84": 5}}))  # fmt: skip
    assert (few_left.enrolled, few_left.completed, few_left.completion_percent) == (7, None, None)
    assert set(few_left.assessment_bands["management"].values()) == {None}

    still_training = row(Figures(group="Y", enrolled=20, completed=10, not_completed=2))
    assert (still_training.completed, still_training.completion_percent) == (10, None)

    alak, oebobo = rows([Figures(group="Alak", enrolled=7, completed=5, not_completed=2),
                         Figures(group="Oebobo", enrolled=30, completed=30)])  # fmt: skip
    assert (alak.completed, oebobo.completed) == (None, None)  # 35 in the other breakdown less 30 would give 5


def test_the_mentoring_report_hides_a_second_count_where_the_three_would_give_back_one_hidden():
    assert follow_up_row(10, 2, 0) == {"with_mentor": 10, "followed_up": None, "not_followed_up": None,
                                       "completed_without_mentor": 0}  # fmt: skip
    assert follow_up_row(10, 8, 3) == {"with_mentor": 10, "followed_up": None, "not_followed_up": None,
                                       "completed_without_mentor": None}  # fmt: skip
    assert follow_up_row(3, 3, 0)["with_mentor"] is None
    assert follow_up_row(12, 6, 0)["followed_up"] == 6
