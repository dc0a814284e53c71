from aedge.cli import main

main(prog_name="aedge")
