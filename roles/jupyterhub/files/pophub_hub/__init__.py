"""pophub inside the hub: the code jupyterhub_config.py calls.

The jupyterhub role copies these files to the box and puts them on the hub's environment's sys.path
(tasks/install.yml); pophub's own pyproject.toml installs them too, so the unit tests import them."""
