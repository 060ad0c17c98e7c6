"""Flex Template entry point: the launcher runs ``wirestream run`` with the template's parameters.

Dataflow's launcher calls this file with each parameter as ``--name=value``; the job's own
options (``--runner=DataflowRunner``, project, region, staging, ``--sdk_container_image``) are
added by the service.
"""

import sys

from pipelines.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", *sys.argv[1:]]))
