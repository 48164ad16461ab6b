from trajet.cli import main

main()
