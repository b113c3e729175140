"""mberil_ros: Offline-MB-ERIL with Mamba for the Kawada NEXTAGE, as a ROS 2 package suite.

Library code (everything outside ``mberil_ros.nodes``) never imports rclpy.
"""

__version__ = "0.1.0"
