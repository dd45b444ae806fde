"""The ACI action endpoint (see docs/aci.md): request parsing, actions, rendering."""
