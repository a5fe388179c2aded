"""Test and demo doubles, public: the exact-format sample writer, a NOMADS-like server and a local
Spark standalone cluster. The product never imports them."""
