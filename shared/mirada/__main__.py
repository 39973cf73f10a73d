import sys

from mirada.cli import main

sys.exit(main())
