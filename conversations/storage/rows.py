"""INSERT statements for the rows every message writes (its two turns, its
answer's row in the spend ledger).

`Model.objects.create` builds the same INSERT anew for every row: on the
message path that took longer than SQLite took to run it (bench/). Here each
statement is built once per database vendor, and only the values are
prepared per row, each by its own field's `get_db_prep_save`, exactly as the
ORM prepares them; defaults and `auto_now` stamps are filled in as `save()`
would. No model instance is made and no `pre_save`/`post_save` signal is sent
(nothing in the project listens for them on these models).
"""

from django.db import models
from django.utils import timezone


class RowInsert:
    def __init__(self, model: type[models.Model], *, unless_present: bool = False) -> None:
        """`unless_present`: a row that would break a unique constraint is not
        inserted (ON CONFLICT DO NOTHING), and nothing is raised."""
        # An auto-incremented key is the database's to fill in.
        self.fields = [field for field in model._meta.concrete_fields if not isinstance(field, models.AutoField)]
        self.columns = frozenset(field.attname for field in self.fields)
        self.table = model._meta.db_table
        self._tail = " ON CONFLICT DO NOTHING" if unless_present else ""
        self._statements: dict[str, str] = {}  # by database vendor

    def __call__(self, cursor, **values) -> int:
        """Insert one row through `cursor` (a Django cursor); fields not
        given take their defaults. The rows inserted: 1, or 0 for a row
        already present (`unless_present`)."""
        unknown = values.keys() - self.columns
        if unknown:
            raise TypeError(f"{self.table} has no column for {sorted(unknown)}")
        # The cursor's own connection: `django.db.connection` is a proxy that
        # looks the thread's connection up again at every attribute read.
        db, now = cursor.db, timezone.now()
        params = [field.get_db_prep_save(self._value(field, values, now), db) for field in self.fields]
        cursor.execute(self._sql(db), params)
        return cursor.rowcount

    @staticmethod
    def _value(field: models.Field, values: dict, now):
        if field.attname in values:
            return values[field.attname]
        if isinstance(field, models.DateTimeField) and (field.auto_now or field.auto_now_add):
            return now
        return field.get_default()

    def _sql(self, db) -> str:
        if db.vendor not in self._statements:
            quote = db.ops.quote_name
            columns = ", ".join(quote(field.column) for field in self.fields)
            placeholders = ", ".join(["%s"] * len(self.fields))
            self._statements[db.vendor] = (
                f"INSERT INTO {quote(self.table)} ({columns}) VALUES ({placeholders}){self._tail}"
            )
        return self._statements[db.vendor]
