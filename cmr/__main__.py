from cmr.cli import app

app(prog_name="cmr")
