"""python -m imgclf.records docs/schema: regenerate the JSON Schemas."""

import sys

from . import write_schemas

for p in write_schemas(sys.argv[1] if len(sys.argv) > 1 else "docs/schema"):
    print(p)
