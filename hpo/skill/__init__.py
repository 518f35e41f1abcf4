"""The skill dir contract: reading it (`SkillDir`) and generating its schemas and templates."""

from hpo.skill.skill_dir import ACTIONS, SkillDir, default_skill_dir, read_json_file

__all__ = ["ACTIONS", "SkillDir", "default_skill_dir", "read_json_file"]
