# Sphinx configuration for the osc-nodeops release notes (reno).
project = 'osc-nodeops release notes'
copyright = 'osc-nodeops developers'
extensions = ['reno.sphinxext']
master_doc = 'index'
exclude_patterns = ['_build']
html_theme = 'alabaster'
