"""pophub on the controller: the event settings spec and its checker, and the tools that talk to a box."""
