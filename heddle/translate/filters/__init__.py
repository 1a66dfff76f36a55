"""HTTP filters of sidecars' and gateways' connection managers: one builder per filter, in
an ordered registry (`registry.HTTP_FILTERS`). A new filter is a module and a registry entry."""
