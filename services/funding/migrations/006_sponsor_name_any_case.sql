-- A sponsor's name is unique whatever its case, as registering one has always checked. The check and the insert
-- were two statements, so two registrations at once ("Bank NTT", "BANK NTT") could both pass; the index makes it
-- the database's rule, and the insert's ON CONFLICT then finds the other.
DO $$
DECLARE
    clashing text;
BEGIN
    SELECT string_agg(format('%s (%s)', name, id), ', ' ORDER BY lower(name), created_at) INTO clashing
      FROM sponsor WHERE lower(name) IN (SELECT lower(name) FROM sponsor GROUP BY 1 HAVING count(*) > 1);
    IF clashing IS NOT NULL THEN
        RAISE EXCEPTION 'sponsors whose names differ only in case: %. Keep one name of each as it is and rename the '
            'others (UPDATE sponsor SET name = ''...'' WHERE id = ''...''), or ask the sponsor which is theirs; then '
            'start funding again', clashing;
    END IF;
END $$;

CREATE UNIQUE INDEX sponsor_name_any_case ON sponsor (lower(name));
