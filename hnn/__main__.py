from hnn.cli import main

main()
