import sys

from sdk.benchmarks.gpu.check import main

sys.exit(main())
