import sys

from brushwork.cli import main

sys.exit(main())
