-- offer_business (business_id) repeats the first column of offer_business_status (business_id, status), which
-- answers every look by business as well. Each offer no longer maintains a second index on a random uuid: a new
-- pledge writes tens of thousands of offers in one COPY.
DROP INDEX offer_business;
