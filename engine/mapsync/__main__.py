from mapsync.cli import main

main()
