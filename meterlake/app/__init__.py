"""The application: the command line, the pipeline that runs the layers (bronze,
silver, gold), replays and the web page. The only package that imports the layers."""
