# Sphinx configuration for osc-nodeops.
project = 'osc-nodeops'
copyright = 'osc-nodeops developers'
extensions = ['cliff.sphinxext']
master_doc = 'index'
exclude_patterns = ['_build']
html_theme = 'alabaster'
autoprogram_cliff_application = 'openstack'
