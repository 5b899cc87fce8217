import sys

from jaxmbrl.cli import main

sys.exit(main())
