"""`heddle dashboard`: the live service graph, proxies' sync state, the configuration's
problems and what applies to a workload, as a web page on the control plane's debug port."""
