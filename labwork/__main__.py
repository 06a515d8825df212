from labwork.cli import main

main()
