"""The registry service: Kota Kupang's register of UMKM and their NIB status, source of registry.business.v1."""
