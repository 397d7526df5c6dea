"""What crosses the boxes of the data flow, defined once and imported everywhere."""
