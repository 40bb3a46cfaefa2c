from chatlens.cli.app import app

app()
