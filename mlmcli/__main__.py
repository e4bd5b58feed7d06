from mlmcli.cli import main

main()
