"""`edgebench capacity`: how the robot's costs grow with load and with series, and where each variant and collector breaks."""
