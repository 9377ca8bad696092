"""The funding service: sponsors' pledges matched to eligible businesses, explainably and never over-spent."""
