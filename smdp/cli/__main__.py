import sys

from smdp.cli import main

sys.exit(main())
