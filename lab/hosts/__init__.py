"""The lab of hosts: stages 04 and 05 on several machines, with Sentinel, partitions and pauses."""
