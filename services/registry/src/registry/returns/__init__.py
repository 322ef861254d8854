"""What the registry learns from Simlontar Rek (the homeless-return service): completed
returns update a person's known domicile and PPKS flags; unresolved cases become PPKS
records, provisional when the person is not in the registry."""
