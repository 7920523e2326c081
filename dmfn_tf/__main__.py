import sys

from dmfn_tf.cli import main

sys.exit(main())
