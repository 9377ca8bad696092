-- The coverage last published on public.figures.v1, per kecamatan and for the city, so a figure is published
-- again only when it changes.
CREATE TABLE published_coverage (
    region_code  text PRIMARY KEY,
    registered   integer     NOT NULL,
    with_nib     integer     NOT NULL,
    published_at timestamptz NOT NULL
);
