"""Authentication and the rules of who may do what (docs/security.md).

The principal is shared by both sides; the write side applies the command rules
(``app.write.authorization``), the read side the read rules (``app.queries.access``).
"""
