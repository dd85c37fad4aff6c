from hermipy.client import entry

entry()
