"""The base class of this service's tables, with a metadata of its own (see
pilar_kernel.db.new_table_base): table names never clash with another service's."""

from pilar_kernel.db import new_table_base

Model = new_table_base("DisasterTable")
