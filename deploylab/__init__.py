"""`make deploy-test`: the whole topology deployed with Ansible onto systemd-nspawn hosts, and proven."""
