from hermipy.cli import entry

entry()
