"""The pure core: typed values and the rules that decide. No I/O, no threads, no clock but the
one injected by the caller; everything here is tested without Consul, DNS or a network."""
