from lstm_inspect.cli import entry

entry()
