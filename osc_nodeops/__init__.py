"""osc-nodeops: the compute node runbook as OpenStackClient commands."""
