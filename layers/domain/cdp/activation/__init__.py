"""Audience activation: an audience snapshot's members pushed to ad platforms' custom-audience uploads as hashed
identifiers (Tencent Ads customer files, Ocean Engine DMP data sources), never in clear, with the brand's consent,
suppression lists and global control group applied and every person left out counted by reason."""
