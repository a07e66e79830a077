from lstm_inspect.cli import main

main()
