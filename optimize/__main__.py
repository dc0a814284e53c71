from aedge.optimize.variants import main

main(prog_name="python -m aedge.optimize")
