"""The base of the registry's tables: a metadata of the registry's own (see pilar_kernel.db.new_table_base)."""

from pilar_kernel.db import new_table_base

Table = new_table_base("RegistryTable")
