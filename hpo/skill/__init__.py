"""Generating the skill dir's schemas and templates (`hpo schemas generate|check`).

Reading a skill dir (`SkillDir`) is shared with the trainer and lives in `skillkit.skill_dir`.
"""
