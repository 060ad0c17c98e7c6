"""Record types, explicit Arrow schemas and the input contract of wirestream."""
