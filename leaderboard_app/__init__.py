"""clbench.leaderboard_app"""
