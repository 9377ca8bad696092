"""Reference data every service validates against: Kota Kupang's wilayah and KBLI codes."""
