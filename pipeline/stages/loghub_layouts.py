"""The sixteen Loghub layouts (logparser's benchmark settings), as Loghub publishes them.

The presets (:mod:`pipeline.stages.presets`, ``--preset loghub-hdfs``) and the benchmarks
(``benchmarks/loghub.py``) read them from here: one table. Zhu et al., "Loghub: A Large Collection of System Log
Datasets for AI-driven Log Analytics", ISSRE 2023; https://github.com/logpai/loghub.
"""

from __future__ import annotations

# The raw-line layout of each system in logparser's notation (from the data README); the field named
# Content is the message part.
LOG_FORMATS: dict[str, str] = {
    "HDFS": "<Date> <Time> <Pid> <Level> <Component>: <Content>",
    "Hadoop": r"<Date> <Time> <Level> \[<Process>\] <Component>: <Content>",
    "Spark": "<Date> <Time> <Level> <Component>: <Content>",
    "Zookeeper": r"<Date> <Time> - <Level>  \[<Node>:<Component>@<Id>\] - <Content>",
    "BGL": "<Label> <Timestamp> <Date> <Node> <Time> <NodeRepeat> <Type> <Component> <Level> <Content>",
    "Linux": r"<Month> <Date> <Time> <Level> <Component>(\[<PID>\])?: <Content>",
    "Apache": r"\[<Time>\] \[<Level>\] <Content>",
    "OpenSSH": r"<Date> <Day> <Time> <Component> sshd\[<Pid>\]: <Content>",
}


# The other eight of the sixteen layouts Loghub publishes (logparser's benchmark settings), as written there;
# their logs are not in shared/data, but the layouts are the ones users copy.
LOGHUB_LAYOUTS: dict[str, str] = {
    **LOG_FORMATS,
    "HPC": "<LogId> <Node> <Component> <State> <Time> <Flag> <Content>",
    "Thunderbird": r"<Label> <Timestamp> <Date> <User> <Month> <Day> <Time> <Location> <Component>(\[<PID>\])?: "
                   "<Content>",
    "Windows": "<Date> <Time>, <Level>                  <Component>    <Content>",
    "Android": "<Date> <Time>  <Pid>  <Tid> <Level> <Component>: <Content>",
    "HealthApp": r"<Time>\|<Component>\|<Pid>\|<Content>",
    "Proxifier": r"\[<Time>\] <Program> - <Content>",
    "OpenStack": r"<Logrecord> <Date> <Time> <Pid> <Level> <Component> \[<ADDR>\] <Content>",
    "Mac": r"<Month>  <Date> <Time> <User> <Component>\[<PID>\]( \(<Address>\))?: <Content>",
}
